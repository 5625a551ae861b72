"""The stats report: what a gateway (or a dispatcher, for its backlog) tells the autoscaler
about each Function's requests, every second and at once when a request finds a Function
cold. Knative's activator and autoscaler are joined the same way, by its ``Stat`` message.

One type, one encode, one parse: the writers (the gateway, the dispatcher, the stream
consumers) and the reader (the autoscaler) cannot disagree on a key. On the wire it is JSON:

    {"gateway": "3f2a...", "sentAt": 1767000000.1,
     "functions": [{"namespace": "shop", "name": "checkout", "inFlight": 2, "queued": 1,
                    "arrivals": 5, "idleFor": null,
                    "outcomes": {"requests": 4, "errors": 1,
                                 "latency": [0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}}],
     "cold": [{"namespace": "shop", "name": "checkout", "since": 1767000000.0}]}

Only Functions with requests or replicas are listed (a gateway beside 10,000 idle ones
sends a report the size of what runs); a Function missing from every report has none.

``outcomes`` (issue 28, optional: a report without it parses as before, and a reader that
does not know it ignores it) are the requests a replica finished in the window since the
reporter's previous report: how many, how many failed (a 5xx from the replica, a handler
error, a timeout; not a 4xx the gateway refused with, which says nothing of the version),
and their latency as counts per fixed bucket (``LATENCY_BUCKETS``). Buckets, not a p99:
the windows of several gateways and of several seconds add up bucket by bucket into one
histogram whose p99 is the whole's, while p99s cannot be added at all. The keys are
FunctionKeys, so each published version (its ``version_key``) is reported apart.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .platform import FunctionKey


class StatsInvalid(ValueError):
    """A report the autoscaler cannot read: the message names the field."""


# Upper bounds in seconds of the latency buckets of ``Outcomes.latency``; one more bucket
# holds what took longer than the last. Fixed here, so that every reporter and the reader
# agree without sending them, and fine enough below a second (where p99 limits are set)
# that interpolating within a bucket errs by a few milliseconds, not by a bucket's width.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip


def latency_bucket(seconds: float) -> int:
    """The index of the bucket one request's latency falls in."""
    return bisect.bisect_left(LATENCY_BUCKETS, seconds)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Requests a replica finished in one window: how many, how many failed, and their
    latencies as counts per ``LATENCY_BUCKETS`` bucket (one more for the overflow)."""

    requests: int = 0
    errors: int = 0
    latency: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)

    def __add__(self, other: Outcomes) -> Outcomes:
        return Outcomes(
            self.requests + other.requests,
            self.errors + other.errors,
            tuple(a + b for a, b in zip(self.latency, other.latency, strict=True)),
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        """The q-quantile of the latencies, interpolated within its bucket (as Prometheus's
        histogram_quantile does); the overflow bucket answers its lower bound. None: no
        requests."""
        total = sum(self.latency)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for index, count in enumerate(self.latency):
            if count and seen + count >= rank:
                if index == len(LATENCY_BUCKETS):
                    return LATENCY_BUCKETS[-1]
                lower = LATENCY_BUCKETS[index - 1] if index else 0.0
                upper = LATENCY_BUCKETS[index]
                return lower + (upper - lower) * (rank - seen) / count
            seen += count
        return LATENCY_BUCKETS[-1]

    @classmethod
    def of(cls, latencies: Sequence[tuple[float, bool]]) -> Outcomes:
        """From (seconds, failed) pairs: for tests and benchmarks."""
        buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        for seconds, _ in latencies:
            buckets[latency_bucket(seconds)] += 1
        return cls(len(latencies), sum(1 for _, failed in latencies if failed), tuple(buckets))

    def encode(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "latency": list(self.latency)}

    @classmethod
    def parse(cls, raw: Any, where: str) -> Outcomes:
        fields = _object(raw, where)
        requests = _count(fields, "requests", where)
        errors = _count(fields, "errors", where)
        if errors > requests:
            raise StatsInvalid(f"{where}.errors ({errors}) must not exceed requests ({requests})")
        latency = fields.get("latency", [])
        size = len(LATENCY_BUCKETS) + 1
        if (
            not isinstance(latency, list)
            or len(latency) != size
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in latency)
        ):
            raise StatsInvalid(
                f"{where}.latency must be {size} whole counts >= 0, one per bucket of "
                "hanshu_api.stats_report.LATENCY_BUCKETS and one for longer"
            )
        return cls(requests, errors, tuple(latency))


@dataclass(frozen=True, slots=True)
class FunctionStat:
    namespace: str
    name: str
    in_flight: int = 0  # being served by a replica now
    queued: int = 0  # waiting for a replica (cold, or all replicas at their concurrency)
    arrivals: int = 0  # since the reporter's previous report
    # Seconds since the last reply, when nothing is in flight or queued; None: busy, or
    # nothing has completed yet.
    idle_for: float | None = None
    # Requests finished in the window; None: none finished (or an older reporter).
    outcomes: Outcomes | None = None

    @property
    def key(self) -> FunctionKey:
        return (self.namespace, self.name)

    def encode(self) -> dict[str, Any]:
        encoded: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "inFlight": self.in_flight,
            "queued": self.queued,
            "arrivals": self.arrivals,
            "idleFor": self.idle_for,
        }
        if self.outcomes is not None:
            encoded["outcomes"] = self.outcomes.encode()
        return encoded

    @classmethod
    def parse(cls, raw: Any, where: str) -> FunctionStat:
        fields = _object(raw, where)
        idle = fields.get("idleFor")
        return cls(
            _text(fields, "namespace", where),
            _text(fields, "name", where),
            _count(fields, "inFlight", where),
            _count(fields, "queued", where),
            _count(fields, "arrivals", where),
            None if idle is None else _seconds(idle, f"{where}.idleFor"),
            None
            if fields.get("outcomes") is None
            else Outcomes.parse(fields["outcomes"], f"{where}.outcomes"),
        )


@dataclass(frozen=True, slots=True)
class ColdRequest:
    """A request is waiting at a Function with no replica, since ``since`` (Unix time)."""

    namespace: str
    name: str
    since: float = 0.0

    @property
    def key(self) -> FunctionKey:
        return (self.namespace, self.name)

    def encode(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "since": self.since}

    @classmethod
    def parse(cls, raw: Any, where: str) -> ColdRequest:
        fields = _object(raw, where)
        since = fields.get("since", 0)
        return cls(
            _text(fields, "namespace", where),
            _text(fields, "name", where),
            _seconds(since, f"{where}.since"),
        )


@dataclass(frozen=True, slots=True)
class StatsReport:
    reporter: str  # one id per gateway process; the dispatchers share one
    sent_at: float
    functions: tuple[FunctionStat, ...] = ()
    cold: tuple[ColdRequest, ...] = ()

    def encode(self) -> dict[str, Any]:
        return {
            "gateway": self.reporter,
            "sentAt": self.sent_at,
            "functions": [stat.encode() for stat in self.functions],
            "cold": [request.encode() for request in self.cold],
        }

    @classmethod
    def parse(cls, raw: Any) -> StatsReport:
        """Raises StatsInvalid naming the field that is missing or of the wrong type."""
        fields = _object(raw, "the report")
        reporter = _text(fields, "gateway", "the report")
        sent_at = fields.get("sentAt", 0.0)
        return cls(
            reporter,
            _seconds(sent_at, "sentAt"),
            tuple(
                FunctionStat.parse(item, f"functions[{index}]")
                for index, item in enumerate(_list(fields, "functions"))
            ),
            tuple(
                ColdRequest.parse(item, f"cold[{index}]")
                for index, item in enumerate(_list(fields, "cold"))
            ),
        )


def _object(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise StatsInvalid(f"{where} must be a JSON object, not {type(raw).__name__}")
    return raw


def _list(fields: Mapping[str, Any], name: str) -> list[Any]:
    value = fields.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise StatsInvalid(f"{name} must be a list, not {type(value).__name__}")
    return value


def _text(fields: Mapping[str, Any], name: str, where: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise StatsInvalid(f"{where}.{name} must be a non-empty string")
    return value


def _count(fields: Mapping[str, Any], name: str, where: str) -> int:
    value = fields.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StatsInvalid(f"{where}.{name} must be a whole number >= 0, not {value!r}")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StatsInvalid(f"{where} must be a number of seconds, not {value!r}")
    return float(value)
