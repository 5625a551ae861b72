"""Gateway metrics: what a pay-per-call bill and a cold-start dashboard are made of."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "hanshu_gateway_requests",
    "Requests by function, trigger and status code.",
    ["namespace", "function", "trigger", "code"],
)
LATENCY = Histogram(
    "hanshu_gateway_request_duration_seconds",
    "Time from the request's arrival to the reply, queueing and cold starts included.",
    ["namespace", "function"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
IN_FLIGHT = Gauge("hanshu_gateway_in_flight", "Requests being served.", ["namespace", "function"])
QUEUED = Gauge(
    "hanshu_gateway_queued", "Requests waiting for a replica.", ["namespace", "function"]
)
COLD_STARTS = Counter(
    "hanshu_gateway_cold_starts",
    "Requests that arrived while the function had no ready replica.",
    ["namespace", "function"],
)
COLD_START_LATENCY = Histogram(
    "hanshu_gateway_cold_start_seconds",
    "How long cold requests waited for the first ready replica.",
    ["namespace", "function"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
)
GB_SECONDS = Counter(
    "hanshu_gateway_gb_seconds",
    "Memory (GB) x duration (s) of invocations: the unit of a pay-per-call bill, by "
    "invocation type (Sync, Async, Batch, Event).",
    ["namespace", "function", "type"],
)
INVOCATIONS = Counter(
    "hanshu_gateway_invocations",
    "Calls of a function's replicas (each attempt of an async call counts), by invocation "
    "type (Sync, Async, Batch, Event) and status code.",
    ["namespace", "function", "type", "code"],
)
NO_ROUTE = Counter("hanshu_gateway_unrouted_requests", "Requests that matched no Trigger.")


class FunctionMeters:
    """One function's metric children, bound once: no label lookups per request."""

    def __init__(self, namespace: str, function: str) -> None:
        labels = (namespace, function)
        self.latency = LATENCY.labels(*labels)
        self.in_flight = IN_FLIGHT.labels(*labels)
        self.queued = QUEUED.labels(*labels)
        self.cold_starts = COLD_STARTS.labels(*labels)
        self.cold_start_latency = COLD_START_LATENCY.labels(*labels)
        self._labels = labels
        self._gb_seconds: dict[str, Any] = {}
        self._invocations: dict[tuple[str, int], Any] = {}

    def bill(self, invocation_type: str, gb_seconds: float, code: int) -> None:
        meter = self._gb_seconds.get(invocation_type)
        if meter is None:
            meter = self._gb_seconds[invocation_type] = GB_SECONDS.labels(
                *self._labels, invocation_type
            )
        meter.inc(gb_seconds)
        counter = self._invocations.get((invocation_type, code))
        if counter is None:  # bound once per type and code: no label lookup per request
            counter = self._invocations[(invocation_type, code)] = INVOCATIONS.labels(
                *self._labels, invocation_type, str(code)
            )
        counter.inc()
