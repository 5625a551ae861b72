"""Prometheus metrics of one function instance, served on the admin port at ``/metrics``.

The hot path only bumps plain integers; a custom collector turns them into metric families
when Prometheus scrapes. That keeps per-invocation cost to a few attribute updates instead of
the lock-protected value objects of ``prometheus_client``'s ``Counter`` and ``Histogram``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.core import Metric

# prometheus_client is imported at the first scrape, not at start-up: with what it pulls
# in, it is a tenth of the runtime's import time, all before a cold start's first answer.

OUTCOMES = ("success", "error", "timeout", "throttled", "invalid_response", "rejected")
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


class FunctionMetrics:
    """Counters of one function instance; ``register()`` exposes them on ``/metrics`` (a
    prometheus_client collector)."""

    def __init__(
        self, function: str, in_flight: Callable[[], int], version: str = "LATEST"
    ) -> None:
        self.function = function
        # LATEST, or the published version's number (issue 28): ``function`` stays the
        # Function's name, so a dashboard sums a Function's versions or splits them.
        self.version = version
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self._bucket_counts = [0] * (len(DURATION_BUCKETS) + 1)
        self._duration_sum = 0.0
        self._in_flight = in_flight
        self.init_seconds = 0.0
        self.abandoned_threads = 0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def observe(self, outcome: str, seconds: float) -> None:
        """One invocation that ran user code: its outcome and how long it took."""
        self.outcomes[outcome] += 1
        self._bucket_counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self._duration_sum += seconds

    def register(self) -> None:
        from prometheus_client import REGISTRY

        REGISTRY.register(self)

    def describe(self) -> list[Metric]:
        return []  # as prometheus_client's Collector: names are checked by collecting

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        labels = [self.function, self.version]
        invocations = CounterMetricFamily(
            "hanshu_runtime_invocations",
            "Invocations by outcome: success, error (user exception), timeout, throttled (over "
            "the concurrency limit), invalid_response (a reply of the wrong shape), rejected "
            "(bad request, body too large, draining).",
            labels=["function", "outcome", "version"],
        )
        for outcome, value in self.outcomes.items():
            invocations.add_metric([self.function, outcome, self.version], value)
        yield invocations
        cumulative, buckets = 0, []
        for bound, count in zip(
            (*DURATION_BUCKETS, float("inf")), self._bucket_counts, strict=True
        ):
            cumulative += count
            buckets.append((repr(bound) if bound != float("inf") else "+Inf", cumulative))
        duration = HistogramMetricFamily(
            "hanshu_runtime_invocation_duration_seconds",
            "Time from reading the request to the reply being ready, for invocations that ran.",
            labels=["function", "version"],
        )
        duration.add_metric(labels, buckets, self._duration_sum)
        yield duration
        in_flight = GaugeMetricFamily(
            "hanshu_runtime_in_flight", "Invocations in flight.", labels=["function", "version"]
        )
        in_flight.add_metric(labels, self._in_flight())
        yield in_flight
        init = GaugeMetricFamily(
            "hanshu_runtime_initialization_seconds",
            "Time to import the handler and run the initializer (the instance's own cold start).",
            labels=["function", "version"],
        )
        init.add_metric(labels, self.init_seconds)
        yield init
        abandoned = CounterMetricFamily(
            "hanshu_runtime_abandoned_threads",
            "Synchronous handler calls that timed out and whose thread was left to finish alone.",
            labels=["function", "version"],
        )
        abandoned.add_metric(labels, self.abandoned_threads)
        yield abandoned
