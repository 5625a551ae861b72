"""One async invocation is one trace: the gateway that took it, the dispatcher that ran it,
the gateway's internal port and its forward, and the replica's handler, each a process of
its own exporting spans over OTLP/HTTP to a receiver the test runs."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from tests.support.async_platform import final_status
from tests.support.dev_platform import function, trigger
from tests.support.helpers import eventually
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver

__all__ = ["otlp_receiver"]

SHOW_TRACE = textwrap.dedent("""
    def show(event, context):
        return {"traceparent": event["headers"].get("traceparent"),
                "traceId": context.trace_id, "contextTraceparent": context.traceparent}
""")


def _one(spans: list[ReceivedSpan], service: str, kind: str) -> ReceivedSpan:
    matching = [s for s in spans if s.service == service and s.kind == kind]
    assert len(matching) == 1, (service, kind, spans)
    return matching[0]


async def test_one_async_invocation_is_one_trace_across_the_platform(
    async_platform: Any, otlp_receiver: OtlpReceiver, http: Any
) -> None:
    platform = async_platform(
        [function("show", "show.show", SHOW_TRACE), trigger("s", "show", path="/")]
    )
    async with http.post(
        f"{platform.url}/a", json={}, headers={"X-Hanshu-Invocation-Type": "Async"}
    ) as reply:
        assert reply.status == 202
        invocation_id = reply.headers["X-Hanshu-Invocation-Id"]
    record = await final_status(platform, invocation_id)
    assert record["state"] == "Succeeded", record
    seen = json.loads(record["result"]["body"])
    trace_id = seen["traceId"]
    # The handler reads the trace and finds it in the event's headers, to pass it on.
    assert seen["traceparent"] == seen["contextTraceparent"]
    assert seen["traceparent"].split("-")[1] == trace_id

    def whole_trace() -> list[ReceivedSpan] | None:
        spans = otlp_receiver.trace(trace_id)
        return spans if len(spans) >= 5 else None

    spans = await eventually(whole_trace, timeout=15, message="five spans of the trace")
    assert len(spans) == 5, spans
    gateway_servers = [s for s in spans if s.service == "hanshu-gateway" and s.kind == "server"]
    assert len(gateway_servers) == 2, spans  # the public request, then the dispatcher's call
    taken = next(s for s in gateway_servers if not s.parent_id)  # the root
    dispatched = next(s for s in gateway_servers if s is not taken)
    consumed = _one(spans, "hanshu-dispatcher", "consumer")
    forward = _one(spans, "hanshu-gateway", "client")
    run = _one(spans, "show.default", "server")
    assert (taken.name, dispatched.name) == (
        "POST",
        "POST /_hanshu/dispatch/{namespace}/{function}",
    )
    assert consumed.parent_id == taken.span_id
    assert consumed.attributes["faas.invocation_id"] == invocation_id
    assert consumed.attributes["hanshu.attempt"] == 1
    assert dispatched.parent_id == consumed.span_id
    assert forward.parent_id == dispatched.span_id
    assert run.parent_id == forward.span_id
    assert run.attributes["faas.invocation_id"] == invocation_id
    # The handler's traceparent names the replica's span: what it calls joins below it.
    assert seen["traceparent"].split("-")[2] == run.span_id
