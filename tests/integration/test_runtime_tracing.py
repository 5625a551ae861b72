"""The runtime's side of tracing: the handler reads the invocation's trace from its context
and its event's headers; with an OTLP endpoint, a server span around each invocation is
exported; with an endpoint but no OpenTelemetry in the image, one log line says so and the
replica serves, untraced."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

from tests.support.helpers import eventually
from tests.support.otlp_receiver import OtlpReceiver, otlp_receiver

__all__ = ["otlp_receiver"]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{TRACE}-{CALLER_SPAN}-01"

HANDLERS = textwrap.dedent("""
    def show(event, context):
        context.logger.info("handled")
        return {"traceparent": event["headers"].get("traceparent"),
                "traceId": context.trace_id, "contextTraceparent": context.traceparent}
""")


async def _call(http: Any, url: str, **headers: str) -> dict[str, Any]:
    async with http.get(url, headers=headers) as reply:
        assert reply.status == 200, await reply.text()
        return dict(await reply.json())


async def test_each_invocation_is_a_server_span_in_its_callers_trace(
    runtime_factory: Any, otlp_receiver: OtlpReceiver, http: Any, tmp_path: Path
) -> None:
    (tmp_path / "show.py").write_text(HANDLERS)
    runtime = runtime_factory(tmp_path, "show.show", HANSHU_NAMESPACE="team")
    seen = await _call(http, f"{runtime.url}/", traceparent=CALLER, **{"X-Request-Id": "r-7"})
    spans = await eventually(lambda: otlp_receiver.trace(TRACE), message="the replica's span")
    (span,) = spans
    assert (span.service, span.name, span.kind) == ("test-fn.team", "test-fn", "server")
    assert span.parent_id == CALLER_SPAN
    assert span.attributes["faas.invocation_id"] == "r-7"
    assert span.attributes["http.response.status_code"] == 200
    # What the handler passes on names the replica's span, in the caller's trace.
    assert seen == {
        "traceparent": f"00-{TRACE}-{span.span_id}-01",
        "contextTraceparent": f"00-{TRACE}-{span.span_id}-01",
        "traceId": TRACE,
    }
    # Called with no trace at all: the replica's span is a new trace's root.
    alone = await _call(http, f"{runtime.url}/")
    spans = await eventually(
        lambda: otlp_receiver.trace(alone["traceId"]), message="a root span of a new trace"
    )
    assert [s.parent_id for s in spans] == [""]
    assert alone["traceparent"].split("-")[2] == spans[0].span_id
    runtime.stop(timeout=10)
    logged = [json.loads(line) for line in runtime.logs().splitlines() if '"handled"' in line]
    assert (logged[0]["requestId"], logged[0]["traceId"]) == ("r-7", TRACE)


async def test_an_endpoint_without_opentelemetry_serves_untraced_and_says_so(
    runtime_factory: Any, http: Any, tmp_path: Path
) -> None:
    code, shadow = tmp_path / "code", tmp_path / "no-otel"
    code.mkdir()
    (code / "show.py").write_text(HANDLERS)
    # An image built without hanshu[tracing]: importing opentelemetry fails.
    (shadow / "opentelemetry").mkdir(parents=True)
    (shadow / "opentelemetry" / "__init__.py").write_text(
        "raise ImportError('No module named opentelemetry')\n"
    )
    runtime = runtime_factory(
        code,
        "show.show",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        PYTHONPATH=os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]),
    )
    seen = await _call(http, f"{runtime.url}/", traceparent=CALLER)
    assert seen["traceparent"] == CALLER  # carried as given: nothing to add a span to
    assert seen["traceId"] == TRACE
    runtime.stop(timeout=10)
    said = [
        line for line in runtime.logs().splitlines() if "OpenTelemetry is not installed" in line
    ]
    assert len(said) == 1, runtime.logs()
    assert json.loads(said[0])["level"] == "WARNING"


async def test_untraced_the_handler_still_gets_a_trace_to_pass_on(
    runtime_factory: Any, http: Any, tmp_path: Path
) -> None:
    (tmp_path / "show.py").write_text(HANDLERS)
    runtime = runtime_factory(tmp_path, "show.show")
    kept = await _call(http, f"{runtime.url}/", traceparent=CALLER)
    assert kept == {"traceparent": CALLER, "contextTraceparent": CALLER, "traceId": TRACE}
    # Called directly without one, or with one that is malformed: a new trace, in the
    # event's headers as in the context (a malformed one is never passed on).
    for headers in ({}, {"traceparent": CALLER.upper()}, {"traceparent": f"{CALLER}-x"}):
        seen = await _call(http, f"{runtime.url}/", **headers)
        assert seen["traceparent"] == seen["contextTraceparent"]
        version, trace_id, span_id, flags = seen["traceparent"].split("-")
        assert (version, len(trace_id), len(span_id), flags) == ("00", 32, 16, "01")
        assert trace_id not in (TRACE, TRACE.upper())
        assert seen["traceId"] == trace_id
