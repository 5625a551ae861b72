"""Gateway metrics: what a pay-per-call bill and a cold-start dashboard are made of.

The four series every request moves (requests, latency, GB-seconds, invocations) are plain
numbers in dicts, turned into Prometheus families only when ``/metrics`` is read: through
prometheus_client's metric objects each update takes a lock, an observability check and a
Python bucket search, five updates per request, about a tenth of the gateway's own time
per request (docs/architecture.md, "Measured choices"). The
gateway updates them from one thread; a scrape reads a copy (see _Tally.family).
The rest (rare, or read at scrape time) stay prometheus_client's own.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from .stats import FunctionStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
COLD_STARTS = Counter(
    "hanshu_gateway_cold_starts",
    "Requests that arrived while the function had no ready replica.",
    ["namespace", "function"],
)
# Labelled by the path that served the cold request: "pool" (a specialized warm pool
# replica) or "pod_start" (the Function's own replica, started for it); its _count is the
# cold starts served by each path.
COLD_PATH_POOL = "pool"
COLD_PATH_POD_START = "pod_start"
COLD_START_LATENCY = Histogram(
    "hanshu_gateway_cold_start_seconds",
    "From a cold request's arrival to its reply, by the path that served it (pool: a "
    "specialized warm pool replica; pod_start: the Function's own replica).",
    ["namespace", "function", "path"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
)
SPECIALIZATIONS = Counter(
    "hanshu_gateway_specializations",
    "Warm pool specializations asked for cold Functions, by outcome (specialized, "
    "unavailable: not eligible or no pool replica, late: the Function's own replicas were "
    "ready first, error).",
    ["namespace", "function", "outcome"],
)
NO_ROUTE = Counter("hanshu_gateway_unrouted_requests", "Requests that matched no Trigger.")
# Rare by design (a refusal), so a prometheus_client child per Function is no cost.
QUEUE_FULL = Counter(
    "hanshu_gateway_queue_full_refusals",
    "Requests refused with 429 QueueFull: the queue limit's worth already waited for a replica.",
    ["namespace", "function"],
)
QUEUE_LIMIT = Gauge(
    "hanshu_gateway_queue_limit",
    "Requests that may wait for one Function's replica (HANSHU_QUEUE_LIMIT); one more is "
    "refused with 429 QueueFull.",
)
# Where the container's memory limit is: cgroup v2, then v1.
CGROUP_MEMORY_LIMIT_FILES = (
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
)
# cgroup v1 writes "no limit" as the largest page-aligned 63-bit number.
_UNLIMITED_AT = 1 << 62


class _Tally:
    """A counter per label set, and when each began (Prometheus' ``_created``)."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.values: dict[tuple[str, ...], float] = {}
        self.created: dict[tuple[str, ...], float] = {}

    def add(self, key: tuple[str, ...], amount: float) -> None:
        try:
            self.values[key] += amount
        except KeyError:
            # The start time first: a scrape from another thread that sees the value finds
            # its start time too.
            self.created[key] = time.time()
            self.values[key] = amount

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        # A copy, taken at once: a scrape from another thread (the operator's metrics
        # server, in a process that runs both) never sees the dict change size under it.
        for key, value in list(self.values.items()):
            family.add_metric(key, value, created=self.created[key])
        return family


class LatencyHistogram:
    """One label set's latency histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("counts", "created", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le means <=).
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds


REQUESTS = _Tally(
    "hanshu_gateway_requests",
    "Requests by function, trigger and status code.",
    ("namespace", "function", "trigger", "code"),
)
GB_SECONDS = _Tally(
    "hanshu_gateway_gb_seconds",
    "Memory (GB) x duration (s) of invocations: the unit of a pay-per-call bill, by "
    "invocation type (Sync, Async, Batch, Event).",
    ("namespace", "function", "type"),
)
INVOCATIONS = _Tally(
    "hanshu_gateway_invocations",
    "Calls of a function's replicas (each attempt of an async call counts), by invocation "
    "type (Sync, Async, Batch, Event) and status code.",
    ("namespace", "function", "type", "code"),
)
# By (namespace, function); a Function deleted and created again keeps counting, as a
# prometheus_client child would.
LATENCY: dict[tuple[str, str], LatencyHistogram] = {}
_LATENCY_NAME = "hanshu_gateway_request_duration_seconds"
_LATENCY_HELP = "Time from the request's arrival to the reply, queueing and cold starts included."
_LATENCY_LABELS = ("namespace", "function")
# The live Functions' request counts, by (namespace, function), read at scrape time.
LOADS: dict[tuple[str, str], FunctionStats] = {}
# Bucket bounds as prometheus_client writes them ("0.001", "1.0", "+Inf").
_LATENCY_LES = [repr(float(bound)) for bound in LATENCY_BUCKETS] + ["+Inf"]


class _Families(Collector):
    """What ``/metrics`` shows of the tallies, built when it is read."""

    def collect(self) -> Iterator[Metric]:
        for tally in (REQUESTS, GB_SECONDS, INVOCATIONS):
            yield tally.family()
        latency = HistogramMetricFamily(_LATENCY_NAME, _LATENCY_HELP, labels=_LATENCY_LABELS)
        for key, histogram in list(LATENCY.items()):
            if not any(histogram.counts):
                # A Function no request has reached yet: 17 samples of zeros each, and at
                # 10,000 Functions a 170,000-sample page that held the loop for seconds.
                # Its series appears with its first request, as a lazy client library's does.
                continue
            cumulative, buckets = 0, []
            for le, count in zip(_LATENCY_LES, histogram.counts, strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            latency.add_metric(key, buckets, histogram.sum)
            latency.samples.append(
                Sample(
                    f"{_LATENCY_NAME}_created",
                    dict(zip(_LATENCY_LABELS, key, strict=True)),
                    histogram.created,
                )
            )
        yield latency
        in_flight = GaugeMetricFamily(
            "hanshu_gateway_in_flight", "Requests being served.", labels=_LATENCY_LABELS
        )
        queued = GaugeMetricFamily(
            "hanshu_gateway_queued", "Requests waiting for a replica.", labels=_LATENCY_LABELS
        )
        # Read from the counts the gateway keeps for the autoscaler anyway: no gauge update
        # per request, the two never disagree, and a Function holds no gauge objects.
        for key, stats in list(LOADS.items()):
            in_flight.add_metric(key, stats.in_flight)
            queued.add_metric(key, stats.queued)
        yield in_flight
        yield queued


# The registry reads collect() once now for the names (no describe(): the same families).
REGISTRY.register(_Families())


def parse_memory_limit(text: str) -> int | None:
    """A cgroup memory limit file's bytes; None when it says there is no limit."""
    value = text.strip()
    if value == "max":
        return None
    limit = int(value)
    return None if limit >= _UNLIMITED_AT else limit


def cgroup_memory_limit(files: tuple[str, ...] = CGROUP_MEMORY_LIMIT_FILES) -> int | None:
    """The memory limit of the container the gateway runs in; None with none, or outside one."""
    for path in files:
        try:
            with open(path) as limit_file:
                return parse_memory_limit(limit_file.read())
        except (OSError, ValueError):
            continue
    return None


class MemoryLimit(Collector):
    """``hanshu_gateway_memory_limit_bytes``, read when scraped: a limit resized in place
    shows. Beside prometheus_client's process_resident_memory_bytes it says how near the
    kernel's OOM kill the gateway is. No sample when the container has no limit."""

    def __init__(self, files: tuple[str, ...] = CGROUP_MEMORY_LIMIT_FILES) -> None:
        self.files = files

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "hanshu_gateway_memory_limit_bytes",
            "The memory limit of the gateway's container (its cgroup's), in bytes.",
        )
        limit = cgroup_memory_limit(self.files)
        if limit is not None:
            family.add_metric([], limit)
        yield family


REGISTRY.register(MemoryLimit())


def count_specialization(namespace: str, function: str, outcome: str) -> None:
    SPECIALIZATIONS.labels(namespace, function, outcome).inc()


def count_request(namespace: str, function: str, trigger: str, code: int) -> None:
    REQUESTS.add((namespace, function, trigger, str(code)), 1.0)


class FunctionMeters:
    """One function's meters, bound once: no label lookups per request.

    What a Function holds is what its requests need: a latency histogram, and its
    cold-start series once it has a cold start. 10,000 mostly idle Functions cost about
    a kilobyte each here (``bench/scale_bench.py``), not a set of prometheus_client
    children each (a histogram child alone is dozens of objects)."""

    def __init__(self, namespace: str, function: str, stats: FunctionStats) -> None:
        labels = (namespace, function)
        self.latency = LATENCY.setdefault(labels, LatencyHistogram())
        LOADS[labels] = stats
        self._labels = labels
        self._cold_starts: Counter | None = None
        self._cold_start_latency: dict[str, Histogram] = {}
        # (type, code) -> the GB-seconds and invocations keys: built once, not per request.
        self._bill_keys: dict[tuple[str, int], tuple[tuple[str, ...], tuple[str, ...]]] = {}

    @property
    def cold_starts(self) -> Counter:
        if self._cold_starts is None:
            self._cold_starts = COLD_STARTS.labels(*self._labels)
        return self._cold_starts

    def cold_start_latency(self, path: str) -> Histogram:
        """The cold-start histogram of the path that served (COLD_PATH_*)."""
        histogram = self._cold_start_latency.get(path)
        if histogram is None:
            histogram = COLD_START_LATENCY.labels(*self._labels, path)
            self._cold_start_latency[path] = histogram
        return histogram

    def forget(self) -> None:
        """The Function is gone: its gauges go; its counters stay (a Function deleted
        and created again keeps counting, as a counter must not go backwards)."""
        LOADS.pop(self._labels, None)

    def bill(self, invocation_type: str, gb_seconds: float, code: int) -> None:
        keys = self._bill_keys.get((invocation_type, code))
        if keys is None:
            keys = self._bill_keys[(invocation_type, code)] = (
                (*self._labels, invocation_type),
                (*self._labels, invocation_type, str(code)),
            )
        GB_SECONDS.add(keys[0], gb_seconds)
        INVOCATIONS.add(keys[1], 1.0)
