"""The autoscaler's hot paths stay linear in the number of Functions, and its memory small.

Moved from the operator's (tests/unit/test_operator_scale.py) with the autoscaler."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hanshu_api.models import Scaling
from hanshu_api.platform import FunctionKey
from hanshu_autoscaler import AutoscalerService

NAMESPACE = "team"


class CountingScaler:
    def __init__(self, replicas: Mapping[FunctionKey, int]) -> None:
        self.replicas = dict(replicas)
        self.writes = 0

    def current_replicas(self, key: FunctionKey) -> int | None:
        return self.replicas.get(key)

    async def set_replicas(self, key: FunctionKey, replicas: int) -> None:
        self.writes += 1
        self.replicas[key] = replicas


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("count", [1000, 5000])
async def test_autoscaler_ticks_and_wakes_in_linear_time_and_small_memory(count: int) -> None:
    """A tick over n idle Functions decides nothing for the ones at zero; a cold request
    looks up its own Function instead of copying all n; and a minute of idle ticks
    keeps one shared sample per tick, not one per Function per tick."""
    keys = [(NAMESPACE, f"fn-{i}") for i in range(count)]
    scaling = {key: Scaling() for key in keys}
    listed = 0

    def functions() -> list[tuple[FunctionKey, Scaling]]:
        nonlocal listed
        listed += 1
        return list(scaling.items())

    clock = FakeClock()
    scaler = CountingScaler(dict.fromkeys(keys, 0))
    service = AutoscalerService(scaler, functions, scaling_of=scaling.get, clock=clock)
    for _ in range(60):
        clock.now += 1
        await service.tick()
    assert listed == 60  # once per tick

    wakes = keys[: count // 10]
    service.ingest(
        {
            "gateway": "gw-1",
            "functions": [
                {"namespace": ns, "name": name, "inFlight": 0, "queued": 1} for ns, name in wakes
            ],
            "cold": [],
        }
    )
    for key in wakes:
        await service.wake(key, 0)

    assert listed == 60  # a cold request never lists every Function
    assert scaler.writes == len(wakes)
    samples = {id(sample) for state in service._states.values() for sample in state.samples}
    assert len(samples) == 60  # one idle sample per tick, shared by every Function
    assert len(service._locks) == 0


async def test_a_minute_of_ticks_over_5000_functions_keeps_a_few_mib() -> None:
    """What the autoscaler keeps for 5,000 Functions after a minute of ticks: a few MiB
    (before #23 its samples alone were 33 MiB, inside the operator)."""
    import tracemalloc

    count = 5000
    tracemalloc.start()
    try:
        clock = FakeClock()
        scaling: dict[FunctionKey, Scaling] = {}
        scaler = CountingScaler({})
        service = AutoscalerService(
            scaler, lambda: list(scaling.items()), scaling_of=scaling.get, clock=clock
        )
        for i in range(count):
            key = (NAMESPACE, f"fn-{i}")
            scaling[key] = Scaling()
            scaler.replicas[key] = 0
        for _ in range(60):
            clock.now += 1
            await service.tick()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 8 * 2**20, f"{held / 2**20:.1f} MiB for {count} Functions"
