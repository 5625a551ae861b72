"""The endpoint pool probing starting replicas while requests wait (pure asyncio: the probe
is a stand-in whose answers the test decides)."""

from __future__ import annotations

import asyncio

import pytest
from hanshu_api.platform import Endpoint
from hanshu_gateway.kube_gateway import slice_endpoints
from hanshu_gateway.pool import EndpointPool, NoEndpointInTime

A = Endpoint("10.0.0.1", 8080)
B = Endpoint("10.0.0.2", 8080)


class Replicas:
    """Answers probes as the test says: not ready until ``answer`` is called."""

    def __init__(self) -> None:
        self.ready: set[Endpoint] = set()
        self.asked: list[Endpoint] = []
        self.changed = asyncio.Condition()

    async def probe(self, endpoint: Endpoint) -> bool:
        async with self.changed:
            self.asked.append(endpoint)
            self.changed.notify_all()
        return endpoint in self.ready

    async def asked_for(self, endpoint: Endpoint, times: int = 1) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.asked.count(endpoint) >= times)


def pool_with(replicas: Replicas) -> EndpointPool:
    pool = EndpointPool(concurrency=1, queue_limit=10)
    pool.prober = replicas.probe
    return pool


async def test_nothing_is_probed_while_nobody_waits():
    replicas = Replicas()
    pool = pool_with(replicas)
    pool.set_starting([A])
    await asyncio.sleep(0)
    assert replicas.asked == []
    assert pool.is_cold


async def test_a_waiting_request_gets_the_replica_the_moment_it_answers():
    replicas = Replicas()
    pool = pool_with(replicas)
    pool.set_starting([A])
    waiter = asyncio.create_task(pool.acquire(within=30))
    await replicas.asked_for(A, times=2)  # refused twice: still waiting
    assert not waiter.done()
    replicas.ready.add(A)
    assert await waiter == A
    # Later requests take it at once, before the source says it is ready.
    assert list(pool.ready) == [A]
    pool.release(A)
    assert pool.try_acquire() == A


async def test_a_replica_withdrawn_while_probed_is_never_handed_out():
    replicas = Replicas()
    pool = pool_with(replicas)
    pool.set_starting([A, B])
    waiter = asyncio.create_task(pool.acquire(within=30))
    await replicas.asked_for(A)
    pool.set_starting([B])  # A is terminating now (or gone)
    replicas.ready |= {A, B}
    assert await waiter == B
    assert list(pool.ready) == [B]


async def test_a_probed_replica_that_refuses_is_probed_again_before_more_requests():
    replicas = Replicas()
    pool = pool_with(replicas)
    pool.set_starting([A])
    replicas.ready.add(A)
    waiter = asyncio.create_task(pool.acquire(within=30))
    assert await waiter == A
    pool.release(A)
    replicas.ready.discard(A)
    pool.penalize(A, 0.05)  # what the gateway does when it refuses a connection
    assert pool.is_cold
    second = asyncio.create_task(pool.acquire(within=30))
    await replicas.asked_for(A, times=2)
    assert not second.done()
    replicas.ready.add(A)
    assert await second == A


async def test_the_source_saying_ready_takes_over_from_the_probe():
    replicas = Replicas()
    pool = pool_with(replicas)
    pool.set_starting([A])
    replicas.ready.add(A)
    assert await pool.acquire(within=30) == A
    pool.release(A)
    pool.set_ready([A])
    pool.set_starting([])
    assert list(pool.ready) == [A]
    # The kubelet's readiness probe fails now: not ours to overrule.
    pool.set_ready([])
    pool.set_starting([A])
    assert pool.is_cold
    assert not pool.starting
    waiter = asyncio.create_task(pool.acquire(within=0.05))
    with pytest.raises(NoEndpointInTime):
        await waiter
    assert replicas.asked == [A]  # only the first probe, before it was ever ready


def test_a_slice_says_which_endpoints_are_ready_and_which_are_starting():
    found = slice_endpoints(
        {
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": False, "terminating": True}},
                {"addresses": ["10.0.0.4"], "conditions": {"ready": True, "terminating": True}},
                {"addresses": ["10.0.0.5"]},
            ],
        }
    )
    assert found.ready == [A, Endpoint("10.0.0.5", 8080)]
    assert found.starting == [B]
