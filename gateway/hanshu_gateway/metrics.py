"""Gateway metrics: what a pay-per-call bill and a cold-start dashboard are made of."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from .stats import FunctionStats

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

# REQUESTS' children, bound once per (namespace, function, trigger, code): .labels() costs
# a lock, a tuple of checked strings and a dict lookup on every request otherwise. Bounded
# as the metric itself is: by Triggers times status codes.
_REQUEST_COUNTERS: dict[tuple[str, str, str, int], Any] = {}


def count_request(namespace: str, function: str, trigger: str, code: int) -> None:
    key = (namespace, function, trigger, code)
    counter = _REQUEST_COUNTERS.get(key)
    if counter is None:
        counter = _REQUEST_COUNTERS[key] = REQUESTS.labels(namespace, function, trigger, str(code))
    counter.inc()


class FunctionMeters:
    """One function's metric children, bound once: no label lookups per request."""

    def __init__(self, namespace: str, function: str, stats: FunctionStats) -> None:
        labels = (namespace, function)
        self.latency = LATENCY.labels(*labels)
        # Read at scrape time from the counts the gateway keeps for the autoscaler anyway:
        # two locked gauge updates less per request, and the two can never disagree.
        IN_FLIGHT.labels(*labels).set_function(lambda: stats.in_flight)
        QUEUED.labels(*labels).set_function(lambda: stats.queued)
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
