"""Backpressure for kopf's watch streams: at most as many objects waiting for a worker as
there are workers, per resource kind.

kopf reads each watch stream as fast as it arrives and gives every object with news its
own queue, its own pending worker and its raw body, before any worker is free
(``settings.queueing.worker_limit`` bounds the running workers, not the waiting ones). A
restart with 10,000 Functions and 10,000 Triggers made 20,000 such queues at once: 100,000
deques, 40,000 events, 20,000 bodies, 260 MiB, over the chart's limit before the first
reconcile finished. Here the watcher waits, when a kind already has ``worker_limit``
objects waiting, until one of them gets a worker; meanwhile the rest of the listing stays
in the API server's reply (or, for a watch, in the connection), not in the operator.

No deadlock: the objects waiting are only waiting for a worker, and a running worker ends
without needing anything from the stalled watcher (it leaves after
``settings.queueing.idle_timeout``; one waiting for its own patch's event gives up after
``settings.persistence.consistency_timeout``). kopf has no setting for this; the patch
wraps ``Scheduler.spawn`` of kopf's own task scheduler, and only schedulers given a limit
(the watchers', when ``worker_limit`` is set) are affected. If a kopf release moves
those internals, ``install`` logs that it could not and the operator runs unpatched.

Cost: per resource kind, at most 2 * worker_limit objects in kopf's hands at a time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("hanshu.operator")

_INSTALLED = "__hanshu_backpressure__"


def install() -> bool:
    """Wrap kopf's ``Scheduler.spawn`` (once); False when kopf's internals differ."""
    try:
        from kopf._cogs.aiokits.aiotasks import Scheduler
    except ImportError:
        log.warning("kopf's task scheduler moved: its watch streams run without backpressure")
        return False
    spawn = Scheduler.spawn
    if getattr(spawn, _INSTALLED, False):
        return True
    attributes = Scheduler.__init__.__code__.co_names
    if any(
        name not in attributes for name in ("_limit", "_pending_coros", "_condition", "_closed")
    ):
        log.warning("kopf's task scheduler changed: its watch streams run without backpressure")
        return False
    Scheduler.spawn = _with_backpressure(spawn)  # type: ignore[method-assign]
    return True


def _with_backpressure(
    spawn: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., Coroutine[Any, Any, None]]:
    @functools.wraps(spawn)
    async def spawn_when_there_is_room(
        self: Any, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> None:
        limit = self._limit
        if limit is not None:
            async with self._condition:
                # Woken whenever a worker ends (kopf's cleaner notifies the condition).
                await self._condition.wait_for(
                    lambda: self._closed or self._pending_coros.qsize() < limit
                )
        await spawn(self, coro, name=name)

    setattr(spawn_when_there_is_room, _INSTALLED, True)
    return spawn_when_there_is_room
