"""The stats report: what a gateway (or a dispatcher, for its backlog) tells the autoscaler
about each Function's requests, every second and at once when a request finds a Function
cold. Knative's activator and autoscaler are joined the same way, by its ``Stat`` message.

One type, one encode, one parse: the writers (the gateway, the dispatcher, the stream
consumers) and the reader (the autoscaler) cannot disagree on a key. On the wire it is JSON:

    {"gateway": "3f2a...", "sentAt": 1767000000.1,
     "functions": [{"namespace": "shop", "name": "checkout", "inFlight": 2, "queued": 1,
                    "arrivals": 5, "idleFor": null}],
     "cold": [{"namespace": "shop", "name": "checkout", "since": 1767000000.0}]}

Only Functions with requests or replicas are listed (a gateway beside 10,000 idle ones
sends a report the size of what runs); a Function missing from every report has none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .platform import FunctionKey


class StatsInvalid(ValueError):
    """A report the autoscaler cannot read: the message names the field."""


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

    @property
    def key(self) -> FunctionKey:
        return (self.namespace, self.name)

    def encode(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "inFlight": self.in_flight,
            "queued": self.queued,
            "arrivals": self.arrivals,
            "idleFor": self.idle_for,
        }

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
