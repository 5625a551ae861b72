"""The endpoint pool while a Function's replicas cannot start (pure asyncio, no servers)."""

from __future__ import annotations

import asyncio

import pytest
from hanshu_api.conditions import ReplicaFault
from hanshu_api.platform import Endpoint
from hanshu_gateway.pool import EndpointPool, ReplicasFailing

FAULT = ReplicaFault("ImagePullFailed", 'the image "x" cannot be pulled')
REPLICA = Endpoint("10.0.0.1", 8080)


async def test_a_cold_pool_with_a_fault_refuses_at_once():
    pool = EndpointPool(concurrency=1, queue_limit=10)
    pool.set_fault(FAULT)
    with pytest.raises(ReplicasFailing) as refused:
        await pool.acquire(within=30)
    assert refused.value.fault == FAULT
    assert refused.value.for_caller("hello") == (
        "'hello' cannot start a replica: its image cannot be pulled (ImagePullFailed); the "
        "Function's status says why and how to fix it"
    )
    assert pool.queued == 0


async def test_waiters_are_released_when_the_fault_appears():
    pool = EndpointPool(concurrency=1, queue_limit=10)
    waiters = [asyncio.create_task(pool.acquire(within=30)) for _ in range(3)]
    await asyncio.sleep(0)  # let them queue
    assert pool.queued == 3
    pool.set_fault(FAULT)
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(o, ReplicasFailing) for o in outcomes)
    assert pool.queued == 0


async def test_a_ready_replica_serves_whatever_the_status_says():
    pool = EndpointPool(concurrency=1, queue_limit=10)
    pool.set_ready([REPLICA])
    pool.set_fault(FAULT)  # e.g. one extra replica is unschedulable
    assert await pool.acquire(within=1) == REPLICA
    # Busy, not cold: the next request waits for the replica to free up.
    waiter = asyncio.create_task(pool.acquire(within=30))
    await asyncio.sleep(0)
    pool.release(REPLICA)
    assert await waiter == REPLICA
    # The replica goes while requests wait: nothing is coming for them.
    blocked = asyncio.create_task(pool.acquire(within=30))
    await asyncio.sleep(0)
    pool.set_ready([])
    with pytest.raises(ReplicasFailing):
        await blocked


async def test_when_the_fault_clears_a_cold_request_waits_for_a_replica_again():
    pool = EndpointPool(concurrency=1, queue_limit=10)
    pool.set_fault(FAULT)
    pool.set_fault(None)
    waiter = asyncio.create_task(pool.acquire(within=30))
    await asyncio.sleep(0)
    assert pool.queued == 1
    pool.set_ready([REPLICA])
    assert await waiter == REPLICA
