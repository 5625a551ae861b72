"""A cold Function's temporary endpoint (a specialized warm pool replica) in the gateway's
endpoint pool, and the gateway asking the warm pool once per cold episode (pure asyncio:
the warm pool is a stand-in whose answers the test decides)."""

from __future__ import annotations

import asyncio

from hanshu_api.platform import Endpoint, FunctionKey
from hanshu_gateway.catalog import FunctionEntry
from hanshu_gateway.metrics import SPECIALIZATIONS, FunctionMeters
from hanshu_gateway.pool import EndpointPool
from hanshu_gateway.stats import FunctionStats
from hanshu_gateway.warm_start import WarmStarts

from tests.support.helpers import eventually

KEY = ("warm-ns", "warm-fn")
OWN = Endpoint("10.0.0.1", 8080)
POOLED = Endpoint("10.0.9.9", 8080)


class ScriptedPool:
    """A WarmPool whose answer the test releases."""

    def __init__(self, answer: Endpoint | None) -> None:
        self.answer = answer
        self.asked: list[FunctionKey] = []
        self.retired: list[Endpoint] = []
        self.release = asyncio.Event()

    async def specialize(self, key: FunctionKey) -> Endpoint | None:
        self.asked.append(key)
        await self.release.wait()
        return self.answer

    async def retire(self, key: FunctionKey, endpoint: Endpoint) -> None:
        self.retired.append(endpoint)


def entry_with(concurrency: int = 2) -> FunctionEntry:
    stats = FunctionStats()
    pool = EndpointPool(concurrency=concurrency, queue_limit=100)
    return FunctionEntry(KEY, concurrency, 30.0, 0.25, pool, stats, FunctionMeters(*KEY, stats))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def specializations(outcome: str) -> float:
    return SPECIALIZATIONS.labels(*KEY, outcome)._value.get()


async def test_waiting_requests_go_to_the_specialized_replica_the_moment_it_serves():
    entry = entry_with(concurrency=2)
    warm = ScriptedPool(POOLED)
    starts = WarmStarts(warm)
    waiters = [asyncio.create_task(entry.pool.acquire(within=10)) for _ in range(3)]
    await settle()
    for _ in waiters:  # every waiting request reports the cold Function...
        starts.cold(entry)
    await settle()
    assert warm.asked == [KEY]  # ...and the pool is asked once for the episode
    before = specializations("specialized")
    warm.release.set()
    done = await eventually(lambda: [t for t in waiters if t.done()], timeout=5)
    await settle()
    # The Function's concurrency bounds the specialized replica as it bounds its own.
    assert [task.result() for task in done] == [POOLED, POOLED]
    pending = {t for t in waiters if not t.done()}
    assert len(pending) == 1
    assert specializations("specialized") == before + 1
    assert entry.pool.is_temporary(POOLED)
    assert not entry.pool.is_cold
    entry.pool.release(POOLED)
    assert await pending.pop() == POOLED


async def test_the_specialized_replica_leaves_after_its_requests_once_the_own_are_ready():
    entry = entry_with()
    warm = ScriptedPool(POOLED)
    starts = WarmStarts(warm)
    warm.release.set()
    waiter = asyncio.create_task(entry.pool.acquire(within=10))
    await settle()
    starts.cold(entry)
    assert await waiter == POOLED
    entry.pool.set_ready([OWN])
    # No new request for it, but it keeps the one in flight until that finishes.
    assert entry.pool.try_acquire() == OWN
    await settle()
    assert warm.retired == []
    entry.pool.release(POOLED)
    await settle()
    assert warm.retired == [POOLED]
    assert list(entry.pool.ready) == [OWN]
    assert not entry.pool.is_temporary(POOLED)


async def test_a_specialized_replica_that_refuses_is_dropped_for_good():
    entry = entry_with()
    retired: list[Endpoint] = []
    entry.pool.on_retire = retired.append
    assert entry.pool.add_temporary(POOLED)
    taken = entry.pool.try_acquire()
    assert taken == POOLED
    entry.pool.release(POOLED)
    entry.pool.penalize(POOLED, 0.05)  # the proxy's word for a refused connection
    assert retired == [POOLED]
    assert entry.pool.is_cold
    assert entry.pool.try_acquire() is None


async def test_one_specialized_too_late_is_retired_at_once():
    entry = entry_with()
    warm = ScriptedPool(POOLED)
    starts = WarmStarts(warm)
    waiter = asyncio.create_task(entry.pool.acquire(within=10))
    await settle()
    starts.cold(entry)
    entry.pool.set_ready([OWN])
    assert await waiter == OWN
    before = specializations("late")
    warm.release.set()
    await settle()
    assert warm.retired == [POOLED]
    assert specializations("late") == before + 1
    assert list(entry.pool.ready) == [OWN]


async def test_an_unavailable_pool_leaves_the_ordinary_path_and_a_new_episode_asks_again():
    entry = entry_with()
    warm = ScriptedPool(None)
    warm.release.set()
    starts = WarmStarts(warm)
    before = specializations("unavailable")
    starts.cold(entry)
    starts.cold(entry)
    await settle()
    assert warm.asked == [KEY]
    assert specializations("unavailable") == before + 1
    assert entry.pool.is_cold
    entry.pool.set_ready([OWN])  # the episode ends when it is served...
    entry.pool.set_ready([])  # ...and scaled to zero, the next one begins
    starts.cold(entry)
    await settle()
    assert warm.asked == [KEY, KEY]
