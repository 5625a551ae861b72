"""Operator metrics: reconcile counts by outcome, errors, durations; served on /metrics."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import kopf
from prometheus_client import Counter, Gauge, Histogram

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

FUNCTION_REPLICAS = Gauge(
    "hanshu_function_replicas",
    "Replicas of each Function: desired (what the autoscaler or minReplicas asked for) and "
    "ready (serving).",
    ["namespace", "function", "state"],
)

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
