"""At most RECONCILES_AT_ONCE handlers talk to the API server at a time.

kopf's workers are bounded per resource kind (``settings.queueing.worker_limit``, set in
``startup``): up to that many Functions, Triggers, Deployments... are in kopf's hands at
once. Their handlers share one client of 64 connections; without a bound of their own,
hundreds of them queued for a connection, each holding its manifests and its replies,
and their requests timed out in that queue rather than at the API server. With a bound,
the memory in flight is that of RECONCILES_AT_ONCE handlers' API work, and throughput is
the API server's, which 32 requests at once saturate.

A bounded handler never calls another bounded handler (no slot is awaited while one is
held), so the bound cannot deadlock. Handlers that mostly return at once (most watch
events change nothing) take a slot only around their API work, with ``async with
state.reconcile_slots``, not with this decorator.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .state import RECONCILES_AT_ONCE, operator_state

__all__ = ["RECONCILES_AT_ONCE", "bounded"]

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def bounded(handler: Handler) -> Handler:
    """Run the kopf handler (which takes ``memo``) within the operator's bound."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        async with operator_state(kwargs["memo"]).reconcile_slots:
            return await handler(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
