"""Operator metrics: reconcile counts by outcome, errors, durations, each Function's
replicas and why they cannot start; served on /metrics.

Cost: the reconcile metrics are a few label sets in all; the replica counts one small
tuple per Function (``ReplicaCounts``), made into samples only when scraped.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import kopf
from hanshu_api.platform import FunctionKey
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RECONCILES = Counter(
    "hanshu_operator_reconciles",
    "Reconciles by resource kind and outcome (success, temporary_error, permanent_error, error).",
    ["kind", "outcome"],
)
RECONCILE_DURATION = Histogram(
    "hanshu_operator_reconcile_duration_seconds",
    "Time one reconcile took, by resource kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class ReplicaCounts(Collector):
    """``hanshu_function_replicas{namespace,function,state}``: each Function's desired and
    ready replicas. A ``Gauge`` child per label set costs ~700 bytes (a lock, a value
    object): two per Function were 14 MiB for 10,000 Functions. Here a Function costs one
    tuple, the samples are made when Prometheus scrapes, and a deleted Function's go."""

    def __init__(self) -> None:
        self._counts: dict[FunctionKey, tuple[int, int]] = {}
        # Only the Functions whose replicas cannot start: the reason, from
        # hanshu_api.conditions.REPLICA_FAULT_REASONS. A healthy Function costs nothing here.
        self._faults: dict[FunctionKey, str] = {}

    def set(self, key: FunctionKey, desired: int, ready: int, fault: str | None = None) -> None:
        self._counts[key] = (desired, ready)
        if fault is None:
            self._faults.pop(key, None)
        else:
            self._faults[key] = fault

    def forget(self, key: FunctionKey) -> None:
        self._counts.pop(key, None)
        self._faults.pop(key, None)

    def get(self, key: FunctionKey) -> tuple[int, int] | None:
        return self._counts.get(key)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hanshu_function_replicas",
            "Replicas of each Function: desired (what the autoscaler or minReplicas asked "
            "for) and ready (serving).",
            labels=["namespace", "function", "state"],
        )
        for (namespace, name), (desired, ready) in list(self._counts.items()):
            family.add_metric([namespace, name, "desired"], desired)
            family.add_metric([namespace, name, "ready"], ready)
        yield family
        faults = GaugeMetricFamily(
            "hanshu_function_replica_fault",
            "1 for a Function whose replicas cannot start, by the reason its DeploymentReady "
            "condition gives (ImagePullFailed, Unschedulable, CrashLoop, OutOfMemory, "
            "ContainerConfigError, RuntimeStartupFailed, ProgressDeadlineExceeded, "
            "ReplicaFailure); no sample while they can.",
            labels=["namespace", "function", "reason"],
        )
        for (namespace, name), reason in list(self._faults.items()):
            faults.add_metric([namespace, name, reason], 1)
        yield faults


REPLICA_COUNTS = ReplicaCounts()
REGISTRY.register(REPLICA_COUNTS)

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def instrumented(kind: str) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            outcome = "success"
            try:
                return await handler(*args, **kwargs)
            except kopf.TemporaryError:
                outcome = "temporary_error"
                raise
            except kopf.PermanentError:
                outcome = "permanent_error"
                raise
            except Exception:
                outcome = "error"
                raise
            finally:
                RECONCILES.labels(kind, outcome).inc()
                RECONCILE_DURATION.labels(kind).observe(time.perf_counter() - started)

        return wrapper  # type: ignore[return-value]

    return decorate
