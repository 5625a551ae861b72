"""A cold request's second way to a replica: the warm pool (hanshu_api.warm_pool).

When a request finds its Function with no usable replica, the proxy signals the autoscaler
(the Function's own replicas start, as always) and, in parallel, asks the warm pool here,
once per cold episode however many requests wait: ``WarmPool.specialize`` hands one
generic runtime replica the Function's code and answers with its endpoint once it serves.
That endpoint joins the Function's pool as a temporary one and the waiting requests go to
it at once; when the Function's own replicas are ready it takes no new request and, once
its requests in flight finish, ``WarmPool.retire`` removes it for good.

The warm pool decides eligibility (a Function it may not serve gets None, and its requests
simply wait for their own replicas); without a warm pool nothing here runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from hanshu_api.platform import Endpoint, FunctionKey, WarmPool

from .catalog import FunctionEntry
from .metrics import count_specialization

log = logging.getLogger("hanshu.gateway")

# The outcomes of asking the pool (hanshu_gateway_specializations_total{outcome}).
SPECIALIZED = "specialized"  # a replica serves the Function's waiting requests
UNAVAILABLE = "unavailable"  # not eligible, no pool replica, or every one failed
LATE = "late"  # specialized, but the Function's own replicas were ready first
FAILED = "error"  # the pool broke its promise never to raise


class WarmStarts:
    def __init__(self, warm_pool: WarmPool) -> None:
        self.warm_pool = warm_pool
        self._asking: set[asyncio.Task[None]] = set()
        self._retiring: set[asyncio.Task[None]] = set()

    def cold(self, entry: FunctionEntry) -> None:
        """A request waits for a replica of this cold Function: ask the pool, unless this
        cold episode has asked already."""
        pool = entry.pool
        if pool.warm_asked:
            return
        pool.warm_asked = True
        if pool.on_retire is None:
            key = entry.key
            pool.on_retire = lambda endpoint: _spawn(self._retiring, self._retire(key, endpoint))
        _spawn(self._asking, self._specialize(entry))

    async def _specialize(self, entry: FunctionEntry) -> None:
        namespace, function = entry.key
        started = time.monotonic()
        try:
            endpoint = await self.warm_pool.specialize(entry.key)
        except Exception:
            log.exception("the warm pool failed to specialize a replica for %s", function)
            count_specialization(namespace, function, FAILED)
            return
        if endpoint is None:
            count_specialization(namespace, function, UNAVAILABLE)
            return
        taken = entry.pool.add_temporary(endpoint)
        count_specialization(namespace, function, SPECIALIZED if taken else LATE)
        log.info(
            "a warm pool replica serves %s",
            function,
            extra={
                "function": function,
                "endpoint": endpoint.url,
                "seconds": round(time.monotonic() - started, 4),
                "taken": taken,
            },
        )

    async def _retire(self, key: FunctionKey, endpoint: Endpoint) -> None:
        try:
            await self.warm_pool.retire(key, endpoint)
        except Exception:
            log.exception("the warm pool failed to retire %s", endpoint.url)

    async def close(self) -> None:
        """Let retirements under way finish (a specialized replica must not be left behind
        by a gateway that stops); specializations still asking are cancelled."""
        for task in list(self._asking):
            task.cancel()
        if self._asking or self._retiring:
            await asyncio.wait([*self._asking, *self._retiring], timeout=5)


def _spawn(tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
