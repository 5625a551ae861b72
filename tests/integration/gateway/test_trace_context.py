"""A sync call's W3C trace context, through the gateway to the handler: a caller's
``traceparent`` is kept (the same trace id), a malformed or missing one is replaced by a new
trace, never an error; with tracing on, the gateway's and the replica's spans hang below the
caller's span."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from tests.support.dev_platform import function, trigger
from tests.support.helpers import eventually
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver

__all__ = ["otlp_receiver"]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{TRACE}-{CALLER_SPAN}-01"

SHOW_TRACE = textwrap.dedent("""
    def show(event, context):
        context.logger.info("handled")
        headers = {name.lower(): value for name, value in event["headers"].items()}
        return {"traceparent": headers.get("traceparent"),
                "tracestate": headers.get("tracestate"),
                "traceId": context.trace_id, "contextTraceparent": context.traceparent}
""")


async def _seen(http: Any, url: str, headers: dict[str, str]) -> dict[str, Any]:
    async with http.get(url, headers=headers) as reply:
        assert reply.status == 200, await reply.text()
        return dict(json.loads(await reply.read()))


async def test_a_callers_trace_is_kept_and_a_bad_one_replaced(platform_factory: Any, http: Any):
    platform = platform_factory(
        [function("show", "show.show", SHOW_TRACE), trigger("s", "show", path="/")]
    )
    url = f"{platform.url}/t"
    kept = await _seen(
        http, url, {"traceparent": CALLER, "tracestate": "congo=t61rcWkgMzE", "X-Request-Id": "r-1"}
    )
    # Tracing is off: the gateway takes no part, so the handler gets the caller's own.
    assert kept == {
        "traceparent": CALLER,
        "tracestate": "congo=t61rcWkgMzE",
        "traceId": TRACE,
        "contextTraceparent": CALLER,
    }
    # The replica's log line names the call and its trace.
    lines = await eventually(
        lambda: [
            json.loads(line[line.index("{") :])
            for line in platform.logs().splitlines()
            if '"handled"' in line and '"r-1"' in line
        ],
        message="the handler's log line",
    )
    assert lines[0]["traceId"] == TRACE
    assert lines[0]["requestId"] == "r-1"

    for bad in (CALLER.upper(), f"00-{'0' * 32}-{CALLER_SPAN}-01", f"{CALLER}-extra", None):
        headers = {"tracestate": "congo=t61rcWkgMzE"}
        if bad is not None:
            headers["traceparent"] = bad
        seen = await _seen(http, url, headers)
        version, trace_id, parent_id, flags = seen["traceparent"].split("-")
        assert (version, len(trace_id), len(parent_id), flags) == ("00", 32, 16, "01"), seen
        assert trace_id not in (TRACE, "0" * 32)
        assert seen["traceId"] == trace_id
        assert seen["tracestate"] is None  # it belonged to the traceparent that was dropped


def _one(spans: list[ReceivedSpan], service: str, kind: str) -> ReceivedSpan:
    matching = [s for s in spans if s.service == service and s.kind == kind]
    assert len(matching) == 1, (service, kind, spans)
    return matching[0]


async def test_with_tracing_on_the_spans_hang_below_the_callers(
    platform_factory: Any, otlp_receiver: OtlpReceiver, http: Any
) -> None:
    platform = platform_factory(
        [function("show", "show.show", SHOW_TRACE), trigger("s", "show", path="/")]
    )
    seen = await _seen(http, f"{platform.url}/t", {"traceparent": CALLER})
    assert seen["traceId"] == TRACE
    spans = await eventually(
        lambda: (lambda found: found if len(found) >= 3 else None)(otlp_receiver.trace(TRACE)),
        message="three spans in the caller's trace",
    )
    assert len(spans) == 3, spans
    taken = _one(spans, "hanshu-gateway", "server")
    forward = _one(spans, "hanshu-gateway", "client")
    run = _one(spans, "show.default", "server")
    assert taken.parent_id == CALLER_SPAN
    assert forward.parent_id == taken.span_id
    assert run.parent_id == forward.span_id
    assert taken.attributes["http.response.status_code"] == 200
    # What the handler would pass on names its own span.
    assert seen["traceparent"] == seen["contextTraceparent"] == f"00-{TRACE}-{run.span_id}-01"
